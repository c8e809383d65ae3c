# Gatehouse container image: the one binary on an empty base (FROM scratch) with only the C
# libraries it links and a non-root user. It runs with a read-only root filesystem; state
# lives in the /data volume (SQLite and generated keys; nothing with PostgreSQL).
#
#   docker build -t gatehouse .          (or: buildah bud -t gatehouse .)
#
# scripts/test builds the same final stage offline: it runs deploy/image/rootfs.sh on the
# binary it already compiled and hands the result in as the `build` stage
# (`buildah bud --build-context build=DIR`), so CI never compiles Rust inside a container.

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gatehouse \
 && deploy/image/rootfs.sh target/release/gatehouse /

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENV GATEHOUSE_LISTEN=0.0.0.0:9000 \
    GATEHOUSE_METRICS_LISTEN=0.0.0.0:9300 \
    GATEHOUSE_DATA_DIR=/data \
    GATEHOUSE_LOG_FORMAT=json
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9000 9300
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["/usr/local/bin/gatehouse", "health", "--url", "http://127.0.0.1:9000/-/health/live/"]
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
