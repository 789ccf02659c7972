"""What every algorithm shares: config, seeding, replay buffer, online loop, run files, checkpoints, logging."""
