"""Old import path of the training collator (kept for users' code): see :mod:`mmrope_hf.integrations.training`."""

from mmrope_hf.integrations.training import IGNORE_INDEX, MMRopeCollator, collate, sample_boundaries, text_positions

__all__ = ["IGNORE_INDEX", "MMRopeCollator", "collate", "sample_boundaries", "text_positions"]
