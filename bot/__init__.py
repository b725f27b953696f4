"""digestbot: watches paper listings, scores what is new against keyword profiles, sends digests and alerts."""

__version__ = "0.1.0"
