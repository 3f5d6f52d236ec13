# The store's image, for compose.yaml: the same code runs as web (gunicorn),
# worker (python worker.py) and the one-shot migration.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies first, so that a code change does not reinstall them: the exact versions of the
# lock, each checked against its hash.
COPY requirements/app.lock ./requirements/app.lock
RUN pip install --require-hashes -r requirements/app.lock
COPY pyproject.toml README.md ./
COPY storefront ./storefront
# Editable: create_app() finds templates/, static/ and migrations/ beside the package.
RUN pip install --no-deps -e .

COPY templates ./templates
COPY static ./static
COPY migrations ./migrations
COPY wsgi.py worker.py gunicorn.conf.py ./

# The uploads folder exists, owned by the app's user, so the volume mounted on it is writable.
RUN useradd --create-home storefront && mkdir -p instance/uploads && chown -R storefront instance
USER storefront
EXPOSE 8000
CMD ["gunicorn", "wsgi:app"]
