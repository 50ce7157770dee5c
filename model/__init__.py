"""model package of the ActAvatar toolkit."""
