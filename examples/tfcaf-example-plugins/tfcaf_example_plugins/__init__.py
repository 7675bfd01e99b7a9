"""Example tfcaf plugins (see README.md): every hook tfcaf offers, in one small package."""
