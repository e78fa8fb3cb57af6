"""Who is calling and what they may do: accounts, sign-in sessions, JWTs,
API keys, password and key hashing, principals and scopes."""
