# lme4's fits of the 30 small binary data sets (tests/reference/small_binary/, made by
# make_small_binary_data.py): glmer(y ~ x + (1 | g), binomial) with lme4's defaults. Records θ, β, logLik,
# the convergence messages of checkConv, the Hessian lme4 computed (optinfo$derivs) and its eigenvalues.
# Run from the repository root: Rscript tests/reference/make_small_binary_reference.R
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
dir <- "tests/reference/small_binary"
out <- list()
for (k in 0:29) {
  f <- sprintf("sim_%02d", k)
  d <- read.csv(file.path(dir, paste0(f, ".csv")))
  d$g <- factor(d$g)
  msgs <- character(0)
  m <- withCallingHandlers(glmer(y ~ x + (1 | g), data = d, family = binomial),
                           warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") })
  H <- m@optinfo$derivs$Hessian
  out[[f]] <- list(theta = unname(getME(m, "theta")), beta = unname(fixef(m)),
                   loglik = as.numeric(logLik(m)), deviance = unname(deviance(m)),
                   warnings = msgs, conv_messages = as.list(m@optinfo$conv$lme4$messages),
                   hessian_eigenvalues = if (is.null(H)) NULL else eigen(H, symmetric = TRUE, only.values = TRUE)$values,
                   singular = isSingular(m))
}
out$lme4_version <- as.character(packageVersion("lme4"))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(dir, "lme4_reference.json"))
