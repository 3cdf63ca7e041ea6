"""The leader of a partition: executes actions after commit (attempts, timers, replies)."""
