# Posterior summaries from rstanarm's stan_glmer for cbpp (mm.bayes with a binomial family).
# Run from tests/reference: Rscript make_rstanarm_glmm_reference.R
suppressMessages({library(rstanarm); library(jsonlite)})
dd <- "../../src/mixedmodels/presentation/datasets/"
cbpp <- read.csv(file.path(dd, "cbpp.csv")); cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
ref <- list()
run <- function(name, flat) {
  args <- list(formula = cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp,
               family = binomial, chains = 4, iter = 2000, warmup = 1000, seed = 1, refresh = 0, cores = 2)
  if (flat) args <- c(args, list(prior = NULL, prior_intercept = NULL, prior_covariance = decov(1, 1, 1, 1)))
  t0 <- proc.time()[["elapsed"]]
  fit <- do.call(stan_glmer, args)
  secs <- proc.time()[["elapsed"]] - t0
  m <- as.data.frame(as.matrix(fit))
  cols <- list()
  for (n in names(fixef(fit))) cols[[n]] <- m[[n]]
  cols[["sd_(Intercept)|herd"]] <- sqrt(m[["Sigma[herd:(Intercept),(Intercept)]"]])
  out <- list()
  for (n in names(cols)) { v <- cols[[n]]
    out[[n]] <- list(mean = mean(v), sd = sd(v), q025 = unname(quantile(v, 0.025)), q975 = unname(quantile(v, 0.975))) }
  ps <- prior_summary(fit)
  ref[[name]] <<- list(summary = out, seconds = secs, rhat_max = max(summary(fit)[, "Rhat"], na.rm = TRUE),
                       prior = unclass(ps$prior), prior_intercept = unclass(ps$prior_intercept))
}
run("cbpp_flat", TRUE)
run("cbpp_rstanarm", FALSE)
write_json(ref, "rstanarm_glmm_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
