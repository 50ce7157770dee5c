"""evaluation package of the ActAvatar toolkit."""
