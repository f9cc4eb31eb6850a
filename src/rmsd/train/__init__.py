"""Distillation training: Stage 1 SFT and Stage 2 adversarial RL (paper section 3.8)."""
