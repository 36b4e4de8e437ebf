"""The scheduler: runs the platform's periodic jobs on time, each as its own command, and records every run."""
