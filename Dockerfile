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
# V8 sizes its young generation from the host's memory (16 MB semi-spaces on
# a large node) and compiles optimized code on a background thread whose
# malloc arena never shrinks; --max-semi-space-size=4 and
# --no-concurrent-recompilation keep both small. --heap-growing-percent=30
# lets the old space grow by 30 % between full collections instead of up to
# 4x. (--optimize-for-size does that too, but also holds the young generation
# at 1 MB: a CPU-bound fan-out then spent a fifth of its CPU in scavenges.)
# Figures in docs/performance.md. `npm run bench` runs the operator with
# exactly these flags.
ENTRYPOINT ["node", "--max-semi-space-size=4", "--no-concurrent-recompilation", "--heap-growing-percent=30", "bin/ecr-creds-refresher"]
CMD ["run"]
