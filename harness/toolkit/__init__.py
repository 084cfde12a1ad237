"""The defense toolkit: building blocks that submissions import inside the sandbox.

- ``reverse``: Neural Cleanse's trigger reverse-engineering and anomaly index (Wang et al.,
  "Neural Cleanse: Identifying and Mitigating Backdoor Attacks in Neural Networks",
  IEEE S&P 2019).
- ``label_scan``: a scan of every label with it, shared by detectors and the stealthy
  attacks that are built to evade it.
- ``pruning``: Fine-Pruning's steps (Liu, Dolan-Gavitt, Garg, "Fine-Pruning: Defending
  Against Backdooring Attacks on Deep Neural Networks", RAID 2018).
- ``goodnet``: the CSAW-HackML course project's GoodNet as one standard Keras model.
- ``adversarial``: projected gradient descent (Madry et al., ICLR 2018), which the
  label-consistent backdoor uses to harden the images it poisons.

Nothing here knows of the harness's runs, stores or sandbox: it is plain Keras and NumPy.
"""
