# One image holds the five service executables, the console and the CLI; compose.yaml picks the command.
FROM swift:6.1-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq libprotobuf-c-dev liblz4-dev libnats-dev libopenblas-dev libsqlite3-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Shared Shared
COPY Services Services
COPY CLI CLI
COPY Tests Tests
RUN swift build -c release --static-swift-stdlib \
    && mkdir /out && for p in persona persona-ingest persona-feature persona-model persona-risk-control persona-recommend persona-console; do \
         cp "$(swift build -c release --show-bin-path)/$p" /out/; done

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq libprotobuf-c1 liblz4-1 libnats3.4 libopenblas0-pthread libsqlite3-0 ca-certificates curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data persona && mkdir -p /data /run/persona && chown persona /data /run/persona
COPY --from=build /out/ /usr/local/bin/
USER persona
ENV PERSONA_HOST=0.0.0.0 PERSONA_DATA_DIR=/data
VOLUME /data
