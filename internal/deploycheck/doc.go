// Package deploycheck holds no code, only tests: they parse the deployment files (Dockerfile,
// deploy/docker-compose.yml, deploy/.env.example, deploy/k8s, the Railway files and the CI
// workflow) and check them against evp itself: every service and probe is there, every
// environment variable they name is one evp reads (config.EnvNames) or one of a third-party
// image, every setting evp reads is documented, and every command they run is an evp command.
// No container engine runs on the development machine, so nothing is started. One test runs
// the Makefile's dashboard step (make run rebuilds a stale dashboard) with a stand-in npm.
package deploycheck
