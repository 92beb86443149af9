# glmmTMB's covariance-structure terms (us, diag, cs, ar1, ou) as references for
# tests/test_covstruct.py (issue 19). Simulates two seeded panels (written to CSV next to this
# script), fits them and sleepstudy with glmmTMB (ML), and lme4 for the `us` model.
# Run from the repository root: Rscript tests/reference/make_covstruct_reference.R
suppressPackageStartupMessages({library(glmmTMB); library(lme4); library(jsonlite); library(MASS)})

# --- an AR(1) panel: 60 subjects, 8 equally spaced times, ~10% of the rows missing ------------
set.seed(20261202)
n_id <- 60; n_t <- 8
panel <- expand.grid(time = 0:(n_t - 1), id = 1:n_id)
panel$x <- rnorm(nrow(panel))
ar <- unlist(lapply(1:n_id, function(i) MASS::mvrnorm(1, rep(0, n_t), 0.8^2 * 0.6^abs(outer(1:n_t, 1:n_t, "-")))))
b <- rnorm(n_id, sd = 0.7)[panel$id]
panel$y <- 1 + 0.3 * panel$time + 0.5 * panel$x + b + ar + rnorm(nrow(panel), sd = 0.4)
eta <- 0.2 + 0.1 * panel$time + 0.3 * panel$x + ar
panel$count <- rpois(nrow(panel), exp(eta))
panel <- panel[runif(nrow(panel)) > 0.1, ]
panel$ftime <- sprintf("t%d", panel$time)       # t0 < t1 < ... < t7 sort as the times
write.csv(panel, "tests/reference/covstruct_panel.csv", row.names = FALSE)

# --- an OU panel: unequally spaced times, 80 subjects with 4-6 of the 6 times each ------------
set.seed(7)
times <- c(0, 0.5, 1.5, 2, 3.5, 5)
ou_rows <- lapply(1:80, function(i) {
  S <- 1.2^2 * exp(-0.6 * abs(outer(times, times, "-")))
  e <- MASS::mvrnorm(1, rep(0, length(times)), S)
  d <- data.frame(id = i, time = times, x = rnorm(length(times)))
  d$y <- 2 + 0.7 * d$x + e + rnorm(length(times), sd = 0.6)
  d[sort(sample(length(times), sample(4:6, 1))), ]
})
oud <- do.call(rbind, ou_rows)
write.csv(oud, "tests/reference/covstruct_ou.csv", row.names = FALSE)

vc_term <- function(m, k) {
  v <- VarCorr(m)$cond[[k]]
  list(sd = unname(attr(v, "stddev")), cor = unname(attr(v, "correlation")))
}
fit_summary <- function(m, terms) {
  out <- list(loglik = as.numeric(logLik(m)),
              fixef = as.list(fixef(m)$cond),
              se = as.list(sqrt(diag(vcov(m)$cond))),
              sigma = if (family(m)$family == "gaussian") sigma(m) else NULL,
              terms = lapply(setNames(terms, terms), function(k) vc_term(m, k)))
  out
}

panel$id <- factor(panel$id)
panel$ftime <- factor(panel$ftime)
oud$id <- factor(oud$id)
oud$times <- numFactor(oud$time)
sleep <- lme4::sleepstudy
sleep$fdays <- factor(paste0("d", sleep$Days %/% 4))   # days 0-3, 4-7, 8-9

out <- list()
m <- glmmTMB(y ~ time + x + (1 | id) + ar1(ftime + 0 | id), panel, REML = FALSE)
out$panel_ar1 <- fit_summary(m, c("id", "id.1"))
m <- glmmTMB(y ~ time + x + (1 | id) + ar1(ftime + 0 | id), panel, REML = TRUE)
out$panel_ar1_reml <- fit_summary(m, c("id", "id.1"))
m <- glmmTMB(y ~ time + x + ar1(ftime + 0 | id), panel, REML = FALSE)
out$panel_ar1_only <- fit_summary(m, "id")
m <- glmmTMB(count ~ time + x + ar1(ftime + 0 | id), panel, family = poisson)
out$panel_poisson_ar1 <- fit_summary(m, "id")
m <- glmmTMB(y ~ x + ou(times + 0 | id), oud, REML = FALSE)
out$ou <- fit_summary(m, "id")
out$ou$times <- times
m <- glmmTMB(Reaction ~ Days + us(Days | Subject), sleep, REML = FALSE)
out$sleep_us <- fit_summary(m, "Subject")
m <- glmmTMB(Reaction ~ Days + diag(Days | Subject), sleep, REML = FALSE)
out$sleep_diag <- fit_summary(m, "Subject")
m <- glmmTMB(Reaction ~ Days + cs(0 + fdays | Subject), sleep, REML = FALSE)
out$sleep_cs <- fit_summary(m, "Subject")
l4 <- lmer(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
out$sleep_us_lme4 <- list(loglik = as.numeric(logLik(l4)), fixef = as.list(fixef(l4)),
                          se = as.list(sqrt(diag(as.matrix(vcov(l4))))), sigma = sigma(l4))
out$glmmTMB_version <- as.character(packageVersion("glmmTMB"))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/covstruct_reference.json")
