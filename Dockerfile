# syntax=docker/dockerfile:1
# Gatehouse: a static binary on a distroless, non-root base.
#
#   docker build -t gatehouse .
#   docker run -p 443:8443 -p 80:8080 -v gatehouse-data:/data \
#     -v ./config.yaml:/etc/gatehouse/config.yaml:ro gatehouse
#
# Ports: 8443 HTTPS (the gateway), 8080 HTTP (redirects to HTTPS, and ACME
# HTTP-01 challenges when that mode exists). Map them to 443/80 on the host.
# Data (users, sessions, TLS material) lives in the /data volume.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/gatehouse ./cmd/gatehouse \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
COPY --from=build /src/config.example.yaml /etc/gatehouse/config.yaml
COPY --from=build --chown=65532:65532 /out/data /data
ENV GATEHOUSE_DATA_DIR=/data
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve", "-config", "/etc/gatehouse/config.yaml"]
