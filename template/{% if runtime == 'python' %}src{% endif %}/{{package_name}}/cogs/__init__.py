"""Slash commands, one cog per module.

Bot.load_cogs loads every module here whose name does not start with "_" and
calls its ``async def setup(bot)``, so a new command is a new file in this
folder: no other file changes, and template updates never touch yours.
"""
