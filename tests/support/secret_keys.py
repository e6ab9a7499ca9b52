"""Keys the content mask must treat as credentials: the spellings apps use, in ASCII."""

SECRET_KEY_SPELLINGS = (
    "api_key",
    "OPENAI_API_KEY",
    "apikey",
    "x-api-key",
    "client_secret",
    "secret",
    "password",
    "passwd",
    "Authorization",
    "credentials",
    "access_token",
    "auth-token",
    "refresh_token",
    "session_token",
    "Bearer",
    "private_key",
)
