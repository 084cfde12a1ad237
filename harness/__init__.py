"""backdoor-harness: a competition harness for defenses against backdoored networks."""

__version__ = "0.1.0"
