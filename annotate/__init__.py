"""annotate package of the ActAvatar toolkit."""
