# A Debian 12 image of spoold (and the spool CLI).
#
#   docker build -t spool .
#   docker run -d --name spool -p 7379:7379 -v spool-data:/var/lib/spool \
#     spool --requirepass "$(openssl rand -hex 16)"
#
# Arguments after the image name are spoold settings. Inside the container
# spoold listens on 0.0.0.0 (so that the published port reaches it); with
# no password, protected mode answers every client from outside the
# container with -DENIED, so give it --requirepass (or, behind a firewall
# only, --protected-mode no). Data lives in the volume /var/lib/spool.
# The HTTP admin (7380) is off unless --http-port is given; its dashboard
# asks for the requirepass password, /healthz and /metrics have none, and
# with --tls-cert-file/--tls-key-file (mounted into the container) it serves
# HTTPS (admin-tls auto).

FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential meson ninja-build pkg-config \
      libevent-dev libsqlite3-dev libcjson-dev liblua5.1-0-dev lua-cjson-dev lua-bitop-dev \
      libcurl4-openssl-dev libvips-dev libssl-dev libraft-dev libuv1-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN meson setup /build --buildtype=release -Dtests=false --prefix=/usr \
 && ninja -C /build broker/spoold cli/spool \
 && install -D -m 0755 /build/broker/spoold /out/usr/bin/spoold \
 && install -D -m 0755 /build/cli/spool /out/usr/bin/spool \
 && install -D -m 0644 dist/spoold.conf /out/etc/spool/spoold.conf \
 && install -D -m 0644 dist/spoold.8 /out/usr/share/man/man8/spoold.8 \
 && install -D -m 0644 dist/spoold.conf.5 /out/usr/share/man/man5/spoold.conf.5 \
 && install -D -m 0644 cli/spool.1 /out/usr/share/man/man1/spool.1

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libevent-core-2.1-7 libevent-pthreads-2.1-7 \
      libevent-extra-2.1-7 libevent-openssl-2.1-7 libssl3 libsqlite3-0 libcjson1 liblua5.1-0 lua-cjson lua-bitop \
      libraft2 libuv1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/spool --shell /usr/sbin/nologin spool \
 && install -d -o spool -g spool -m 0700 /var/lib/spool
COPY --from=build /out/ /
USER spool
WORKDIR /var/lib/spool
VOLUME /var/lib/spool
EXPOSE 7379
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s CMD ["spool", "--url", "spool://127.0.0.1:7379", "ping"]
ENTRYPOINT ["spoold", "--config", "/etc/spool/spoold.conf", "--bind", "0.0.0.0", "--http-port", "0"]
