# The qcflow image: every worker, the review server and the CLI; the command picks which (compose, deploy/k8s).
FROM node:20-bookworm-slim
ENV NODE_ENV=production ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY . .
# The node image's unprivileged user (uid 1000), as the manifests' securityContext expects.
USER node
CMD ["node", "--import", "tsx", "src/cli/main.ts", "--help"]
