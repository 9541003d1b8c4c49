# svidagent container image: a static binary on distroless, running as
# nonroot (uid 65532) with no shell.
#
#   docker build -t ghcr.io/svidagent/svidagent:dev .
#   docker run --rm --read-only -v /run/spire/sockets:/run/spire/sockets:ro \
#     -v "$PWD/agent.hcl:/etc/svidagent/agent.hcl:ro" \
#     --tmpfs /run/svid ghcr.io/svidagent/svidagent:dev
#
# ghcr.io/svidagent/svidagent is a placeholder name: push to your own
# registry. See docs/DEPLOYMENT.md.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
    -o /out/svidagent ./cmd/svidagent

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/svidagent /svidagent
USER nonroot:nonroot
# The default health address in the image's examples; publish it if the
# config listens beyond loopback.
EXPOSE 8081
ENTRYPOINT ["/svidagent"]
CMD ["run", "-config", "/etc/svidagent/agent.hcl"]
