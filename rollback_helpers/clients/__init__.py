"""The world through the two seams: GitHub over httpx; flyctl, health and databases."""
