"""train package of the ActAvatar toolkit."""
