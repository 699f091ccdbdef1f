# The local runtime (functions + HTTP API) for docker-compose. The GPU runner has its own
# image: gpu_runner/Dockerfile.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md template.yaml ./
COPY src ./src
COPY functions ./functions
COPY gpu_runner ./gpu_runner
RUN pip install --no-cache-dir -e .
EXPOSE 3000
CMD ["stek", "up", "--no-runner", "--host", "0.0.0.0"]
