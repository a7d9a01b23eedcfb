"""Frequency allocations (which rotary pair reads which axis), the rotary module, and per-head rotation."""
