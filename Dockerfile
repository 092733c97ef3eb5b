FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md settings.py clock.py ./
COPY topics topics
COPY streams streams
COPY agents agents
COPY api api
COPY observability observability
COPY store store
COPY cli cli
COPY rules rules
COPY reference reference
COPY simulation simulation
COPY benchmarks benchmarks
RUN pip install --no-cache-dir '.[postgres]'
ENV GRIDLINK_KAFKA_BOOTSTRAP=kafka:9092
CMD ["gridlink", "worker"]
