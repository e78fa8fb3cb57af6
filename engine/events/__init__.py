"""Engine events: everything that happened, recorded in the outbox in the same
transaction as the change it describes."""
