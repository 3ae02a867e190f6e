"""Settings for the example: no database, no templates, no CSRF middleware (a JSON API)."""

SECRET_KEY = "djangosite-example-only-not-a-secret"  # an example, never deployed
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djangosite.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
