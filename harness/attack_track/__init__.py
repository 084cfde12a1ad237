"""The attack track: hand-in poisoning recipes, trained into models by the harness and
scored by how well they evade the defenses.

The question comes from Xiong, Xu, Zhong and Li, "Escaping Backdoor Attack Detection of
Deep Learning" (IFIP SEC 2020): can a trigger be designed to escape trigger-reconstruction
defenses? The Trojan Detection Challenge 2022 made it a contest track (evasive trojans:
hand-ins scored by how badly a detector separates them from clean models, valid only when
the trojan works), then ran a final round of detectors on the best attacks. Here:

1. ``instance``: each hand-in's ``poison(x, y, rng)`` runs in the sandbox on a training set
   only (``harness.tracks.attack`` checks what it returns); the harness trains the
   poisoned set into a model with the zoo's own training code and a recipe
   (``recipe``), and a clean counterpart on the same images with their true labels; both
   are written to the zoo store as ordinary zoo objects, CA and ASR measured on held-out
   test images the hand-in never saw.
2. ``run``: every hand-in's N instances, then the defenses through the ordinary runner
   (detect and filter tracks) on the models and counterparts.
3. ``score``: per hand-in, each detector's ROC-AUC (its models vs their counterparts),
   evasion = 1 - the best detector's AUC with a bootstrap CI, ASR, CA drop; valid only
   when mean ASR >= 0.97 and the CA drop is at most one point.
"""

#: The attack column of the track's zoo models: ``hand-in:<submission name>`` (one family
#: per hand-in in the reports' attack x defense matrix).
ATTACK_PREFIX = "hand-in:"
