"""Demographic disparity: per-group refusal, over- and under-refusal rates compared with a reference, tested and
FDR-corrected (see docs/disparity.md)."""
