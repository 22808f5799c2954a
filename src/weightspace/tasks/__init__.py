"""Task families that subject networks are trained on."""
