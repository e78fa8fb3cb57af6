"""What the engine keeps about requests for tenant admins (partio's request
history): redaction, a background writer and retention."""
