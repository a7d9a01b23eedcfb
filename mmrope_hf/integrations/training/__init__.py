"""Training batches with the scheme's positions precomputed: :class:`MMRopeCollator` (padded and packed rows)."""

from mmrope_hf.integrations.training.collator import MMRopeCollator, collate
from mmrope_hf.integrations.training.positions import sample_boundaries
from mmrope_hf.integrations.training.samples import IGNORE_INDEX
from mmrope_hf.positions.builder import text_positions

__all__ = ["IGNORE_INDEX", "MMRopeCollator", "collate", "sample_boundaries", "text_positions"]
