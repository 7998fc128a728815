"""Backbones: load by registry name or file, copy by layer name, convert checkpoints, precision, random control."""
