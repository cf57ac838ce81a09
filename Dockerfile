# The Airflow image of the docker-compose stack: the official Airflow 3 image with newsagg
# installed, so the DAGs import `pipeline` and the `newsagg` command is on PATH.
#
#   docker compose build          (or: docker build -t newsagg-airflow .)
#
# Installed with the same pins as development (constraints/py3.11.txt), Airflow's version
# named too so that pip can never move it. The package carries its configuration
# (config/elasticsearch, config/kibana, config/feeds.yaml, as pipeline/config); the copy in
# /opt/newsagg/config is the feed list the stack reads.
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
ARG AIRFLOW_VERSION

USER root
# archive/: the mount point of the shared page archive volume, which takes this owner when new.
RUN mkdir -p /opt/newsagg/archive && chown -R airflow:0 /opt/newsagg
USER airflow
WORKDIR /opt/newsagg

COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 constraints/py3.11.txt constraints/py3.11.txt
COPY --chown=airflow:0 pipeline pipeline
COPY --chown=airflow:0 config config
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        ".[postgres]" \
        -c constraints/py3.11.txt \
    && newsagg --help > /dev/null

COPY --chown=airflow:0 dags /opt/airflow/dags

ENV NEWSAGG_FEEDS_FILE=/opt/newsagg/config/feeds.yaml
WORKDIR /opt/airflow
