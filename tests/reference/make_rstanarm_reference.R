# Posterior summaries from rstanarm (stan_lmer) for the Bayesian fits (mm.bayes).
# Run from tests/reference: Rscript make_rstanarm_reference.R  (needs r-cran-rstanarm, r-cran-jsonlite)
# Priors: (a) rstanarm's defaults (priors="rstanarm" in mm.bayes); (b) flat fixed effects,
# sigma ~ exponential(1/sd(y)), decov(1, 1, 1, 1) (mm.bayes' default).
suppressMessages({library(rstanarm); library(jsonlite)})
dd <- "../../src/mixedmodels/presentation/datasets/"
sleepstudy <- read.csv(file.path(dd, "sleepstudy.csv")); sleepstudy$Subject <- factor(sleepstudy$Subject)
set.seed(20261202)
g <- rep(1:5, each = 8); x <- rep(seq(-1, 1, length.out = 8), 5)
sim5 <- data.frame(g = factor(g), x = x, y = 1 + 0.5 * x + rnorm(5, 0, 0.6)[g] + rnorm(40, 0, 1))
write.csv(sim5, "sim5.csv", row.names = FALSE)
ref <- list()
summ <- function(fit, f, data_name, priors_name, seconds) {
  draws <- as.data.frame(as.matrix(fit))
  out <- list()
  fe <- names(fixef(fit))
  cols <- list()
  for (n in fe) cols[[n]] <- draws[[n]]
  cols[["sigma"]] <- draws[["sigma"]]
  sig <- grep("^Sigma\\[", names(draws), value = TRUE)
  for (s in sig) {
    inner <- sub("^Sigma\\[(.*)\\]$", "\\1", s)
    grp <- sub(":.*$", "", inner); pair <- strsplit(sub("^[^:]*:", "", inner), ",")[[1]]
    if (pair[1] == pair[2]) cols[[sprintf("sd_%s|%s", pair[1], grp)]] <- sqrt(draws[[s]])
  }
  for (s in sig) {
    inner <- sub("^Sigma\\[(.*)\\]$", "\\1", s)
    grp <- sub(":.*$", "", inner); pair <- strsplit(sub("^[^:]*:", "", inner), ",")[[1]]
    if (pair[1] != pair[2]) {
      a <- draws[[sprintf("Sigma[%s:%s,%s]", grp, pair[1], pair[1])]]
      b <- draws[[sprintf("Sigma[%s:%s,%s]", grp, pair[2], pair[2])]]
      cols[[sprintf("cor_%s.%s|%s", pair[1], pair[2], grp)]] <- draws[[s]] / sqrt(a * b)
    }
  }
  for (n in names(cols)) {
    v <- cols[[n]]
    out[[n]] <- list(mean = mean(v), sd = sd(v), q025 = unname(quantile(v, 0.025)), q975 = unname(quantile(v, 0.975)))
  }
  ps <- prior_summary(fit)
  list(formula = f, data = data_name, priors = priors_name, summary = out, seconds = seconds,
       n_draws = nrow(draws), rhat_max = max(summary(fit)[, "Rhat"], na.rm = TRUE),
       prior_intercept = unclass(ps$prior_intercept), prior = unclass(ps$prior), prior_aux = unclass(ps$prior_aux),
       rstanarm_version = as.character(packageVersion("rstanarm")))
}
run <- function(name, f, data, data_name, flat) {
  args <- list(formula = as.formula(f), data = data, chains = 4, iter = 2000, warmup = 1000, seed = 1,
               refresh = 0, cores = 1)
  if (flat) {
    args$prior <- NULL; args$prior_intercept <- NULL
    args <- c(args, list(prior = NULL, prior_intercept = NULL,
                         prior_aux = exponential(1 / sd(data[[all.vars(as.formula(f))[1]]]), autoscale = FALSE),
                         prior_covariance = decov(1, 1, 1, 1)))
  }
  t0 <- proc.time()[["elapsed"]]
  fit <- do.call(stan_lmer, args)
  ref[[name]] <<- summ(fit, f, data_name, if (flat) "flat" else "rstanarm", proc.time()[["elapsed"]] - t0)
}
ss <- "Reaction ~ Days + (Days | Subject)"
run("sleep_flat", ss, sleepstudy, "sleepstudy", TRUE)
run("sleep_rstanarm", ss, sleepstudy, "sleepstudy", FALSE)
run("sim5_flat", "y ~ x + (1 | g)", sim5, "sim5", TRUE)
run("sim5_rstanarm", "y ~ x + (1 | g)", sim5, "sim5", FALSE)
write_json(ref, "rstanarm_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
