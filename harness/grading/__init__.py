"""Course and contest grading (`harness grade`): the folder's hand-ins (``handins``),
unpacked safely (``unpack``), each step of each behind a barrier (``barrier``), a rubric
as data (``rubric``), an optional roster (``roster``), the batch through conformance
checks and the runner (``batch``), points from stored records (``points``) and the grade
sheet, feedback, Gradescope results, instructor summary and public board (``outputs``)."""
