"""Slash commands, one cog per module; bot.EXTENSIONS lists them."""
