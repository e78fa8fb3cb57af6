"""Workers: activities grouped by capability, composed per task queue in main.py."""
