# One image; docker-compose.yml runs it as web, worker and beat with different commands.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 GREENKPI_VAR_DIR=/var/lib/greenkpi
WORKDIR /app
COPY pyproject.toml README.md ./
COPY greenkpi ./greenkpi
COPY greenkpi_schema ./greenkpi_schema
COPY collectors ./collectors
COPY templates ./templates
COPY static ./static
COPY manage.py ./
RUN pip install --no-cache-dir . \
    && useradd --system --home /var/lib/greenkpi greenkpi \
    && mkdir -p /var/lib/greenkpi && chown greenkpi /var/lib/greenkpi
USER greenkpi
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "greenkpi.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--limit-request-line", "8190", "--access-logfile", "-"]
