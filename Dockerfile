# syntax=docker/dockerfile:1
# The clinic image: one image for the three processes of docker-compose.yml
# (web: gunicorn wsgi:app, worker: celery -A worker worker, beat: celery -A worker beat).
FROM python:3.11-slim

# The app finds its migrations at <package>/../migrations, so the code in /app must be the
# one imported (not the copy pip puts in site-packages): PYTHONPATH puts /app first.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    CLINIC_INSTANCE_PATH=/app/instance

WORKDIR /app

RUN groupadd --system --gid 10001 clinic \
    && useradd --system --uid 10001 --gid clinic --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin clinic

# Dependencies are pinned in pyproject.toml; installing the project installs exactly those.
COPY pyproject.toml ./
COPY clinic/ ./clinic/
RUN pip install . \
    && rm -rf build clinic.egg-info

COPY migrations/ ./migrations/
COPY worker.py wsgi.py ./

RUN mkdir -p /app/instance && chown clinic:clinic /app/instance

USER clinic

EXPOSE 8000

CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "3", "wsgi:app"]
