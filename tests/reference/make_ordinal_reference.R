# Reference values for tests/test_ordinal.py: ordinal::clmm on ordinal's wine data.
# Run: Rscript tests/reference/make_ordinal_reference.R  (writes ordinal_reference.json and wine.csv)
suppressMessages({library(ordinal); library(jsonlite)})
data(wine)
here <- "tests/reference"
write.csv(wine, file.path(here, "wine.csv"), row.names = FALSE)

cum_probs <- function(alpha_tau, eta, link) {
  Fn <- switch(link, logit = plogis, probit = pnorm, cloglog = function(x) 1 - exp(-exp(x)),
               loglog = function(x) exp(-exp(-x)), cauchit = pcauchy)
  cuts <- c(-Inf, alpha_tau, Inf)
  t(sapply(eta, function(e) diff(Fn(cuts - e))))
}

one <- function(form, link = "logit", threshold = "flexible", nAGQ = 1) {
  f <- clmm(as.formula(form), data = wine, link = link, threshold = threshold, nAGQ = nAGQ)
  V <- vcov(f)
  nab <- length(f$alpha) + length(f$beta)
  tau <- drop(f$tJac %*% f$alpha)
  X <- model.matrix(~ temp + contact, wine)[, -1, drop = FALSE]
  eta0 <- drop(X[, names(f$beta), drop = FALSE] %*% f$beta)
  re <- ranef(f)
  eta_re <- eta0
  for (g in names(re)) {
    lev <- as.character(wine[[g]])
    eta_re <- eta_re + re[[g]][lev, 1]
    if (ncol(re[[g]]) == 2) eta_re <- eta_re + re[[g]][lev, 2] * X[, "tempwarm"]  # (1 + temp | judge)
  }
  vc <- VarCorr(f)
  list(formula = form, link = link, threshold = threshold, nAGQ = nAGQ,
       logLik = as.numeric(logLik(f)), AIC = AIC(f), alpha = as.list(f$alpha),
       thresholds = tau, beta = as.list(f$beta),
       se = as.list(sqrt(diag(V))[seq_len(nab)]),
       variance = lapply(vc, function(m) diag(as.matrix(m))),
       covariance = lapply(vc, function(m) as.numeric(as.matrix(m))),
       ranef = lapply(re, function(r) as.numeric(as.matrix(r))),
       condVar = lapply(f$condVar, function(v) as.numeric(as.matrix(v))),
       prob0 = cum_probs(tau, eta0[1:8], link), prob_re = cum_probs(tau, eta_re[1:8], link))
}

cases <- list(
  logit = one("rating ~ temp + contact + (1 | judge)"),
  probit = one("rating ~ temp + contact + (1 | judge)", link = "probit"),
  cloglog = one("rating ~ temp + contact + (1 | judge)", link = "cloglog"),
  loglog = one("rating ~ temp + contact + (1 | judge)", link = "loglog"),
  cauchit = one("rating ~ temp + contact + (1 | judge)", link = "cauchit"),
  equidistant = one("rating ~ temp + contact + (1 | judge)", threshold = "equidistant"),
  symmetric = one("rating ~ temp + contact + (1 | judge)", threshold = "symmetric"),
  agq5 = one("rating ~ temp + contact + (1 | judge)", nAGQ = 5),
  agq10 = one("rating ~ temp + contact + (1 | judge)", nAGQ = 10),
  probit_agq10 = one("rating ~ temp + contact + (1 | judge)", link = "probit", nAGQ = 10),
  crossed = one("rating ~ temp + contact + (1 | judge) + (1 | bottle)"),
  crossed_probit = one("rating ~ temp + contact + (1 | judge) + (1 | bottle)", link = "probit"),
  crossed2 = one("rating ~ contact + (1 | judge) + (1 | bottle)"),
  vector = one("rating ~ temp + contact + (1 + temp | judge)")
)
writeLines(toJSON(cases, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(here, "ordinal_reference.json"))
