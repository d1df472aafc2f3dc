# syntax=docker/dockerfile:1
# The operator's image: build the TypeScript in one stage, run the compiled
# JavaScript with production dependencies only on a slim Node.js 24 base, as
# an unprivileged numeric user (the chart sets runAsNonRoot and a read-only
# root filesystem).

FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx --no-install tsc -p tsconfig.build.json

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
# 1000 is the `node` user of the base image.
USER 1000:1000
EXPOSE 8080 8081
# V8 sizes its young generation from the host's memory and compiles optimized
# code on a background thread whose malloc arena never shrinks; neither buys
# this mostly idle, I/O-bound process anything, and together they cost about
# 30 MB at a thousand namespaces. --optimize-for-size makes V8 grow its heap
# less between full collections: a 3,000-namespace fan-out peaked at 105 MB
# with it, at 124 to 166 MB without. It costs CPU only where the operator is
# CPU-bound: an unthrottled fan-out (--kube-api-qps 0) takes 1.5x its floor
# instead of 1.0x (docs/performance.md). `npm run bench` runs the operator
# with exactly these flags.
ENTRYPOINT ["node", "--max-semi-space-size=1", "--no-concurrent-recompilation", "--optimize-for-size", "bin/ecr-creds-refresher"]
CMD ["run"]
