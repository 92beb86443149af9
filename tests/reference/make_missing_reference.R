# Reference values for mixedmodels' missing-data module (tests/test_missing_*.py).
# Exports mitml's studentratings data, imputes it with panImpute (fixed seed), EXPORTS the imputed
# data sets, fits lmer on each and pools them with mitml's testEstimates / testModels.
# Run from the repository root:  Rscript tests/reference/make_missing_reference.R
suppressPackageStartupMessages({library(mitml); library(lme4); library(jsonlite)})
out <- "tests/reference"
data(studentratings)
sr <- studentratings[, c("ID", "FedState", "Sex", "MathAchiev", "ReadAchiev", "ReadDis", "SES",
                         "CognAbility")]
write.csv(sr, file.path(out, "studentratings.csv"), row.names = FALSE, na = "")

M <- 5
fml <- ReadDis + SES ~ ReadAchiev + (1 | ID)
t0 <- proc.time()[["elapsed"]]
imp <- panImpute(sr, formula = fml, n.burn = 2000, n.iter = 100, m = M, seed = 123)
pan_seconds <- proc.time()[["elapsed"]] - t0
impl <- mitmlComplete(imp, "all")
long <- do.call(rbind, lapply(seq_len(M), function(i) cbind(.imp = i, impl[[i]][, c("ID", "ReadAchiev", "ReadDis", "SES")])))
write.csv(long, file.path(out, "missing_imputations.csv"), row.names = FALSE)

rhat <- summary(imp)$conv   # potential scale reduction per parameter (beta, psi, sigma)

pool_table <- function(te) {
  est <- te$estimates
  list(names = rownames(est), estimate = est[, "Estimate"], se = est[, "Std.Error"],
       t = est[, "t.value"], df = est[, "df"], p = est[, "P(>|t|)"], riv = est[, "RIV"],
       fmi = est[, "FMI"])
}
fit_full <- with(impl, lmer(ReadAchiev ~ ReadDis + SES + (1 | ID)))
fit_one <- with(impl, lmer(ReadAchiev ~ ReadDis + (1 | ID)))
fit_null <- with(impl, lmer(ReadAchiev ~ 1 + (1 | ID)))
te <- testEstimates(fit_full, extra.pars = TRUE)
te_df <- testEstimates(fit_full, extra.pars = TRUE, df.com = 747)
ep <- te$extra.pars

tm <- function(a, b, ...) {
  r <- testModels(a, b, ...)$test
  list(F = r[1, "F.value"], df1 = r[1, "df1"], df2 = r[1, "df2"], p = r[1, "P(>F)"], riv = r[1, "RIV"])
}
tests <- list(
  D1_one = tm(fit_full, fit_one, method = "D1"),
  D1_one_dfcom = tm(fit_full, fit_one, method = "D1", df.com = 746),
  D1_two = tm(fit_full, fit_null, method = "D1"),
  D1_two_dfcom = tm(fit_full, fit_null, method = "D1", df.com = 746),
  D2_one = tm(fit_full, fit_one, method = "D2"),
  D2_two = tm(fit_full, fit_null, method = "D2"),
  D3_one = tm(fit_full, fit_one, method = "D3"),
  D3_two = tm(fit_full, fit_null, method = "D3")
)
# the per-imputation fits, to check our lmer on the same data sets
per_fit <- lapply(fit_full, function(f) list(beta = unname(fixef(f)), se = unname(sqrt(diag(as.matrix(vcov(f))))),
                                             sigma = sigma(f), loglik = as.numeric(logLik(f))))
# complete-case fit, for compare_missing
cc <- lmer(ReadAchiev ~ ReadDis + SES + (1 | ID), data = sr)

# timing for bench/: panImpute with m = 20 on the 750 rows, burn-in 1000, 100 iterations between
t1 <- proc.time()[["elapsed"]]
imp20 <- panImpute(sr, formula = fml, n.burn = 1000, n.iter = 100, m = 20, seed = 1)
pan20_seconds <- proc.time()[["elapsed"]] - t1
fits20 <- with(mitmlComplete(imp20, "all"), lmer(ReadAchiev ~ ReadDis + SES + (1 | ID)))
te20 <- testEstimates(fits20, extra.pars = TRUE)

# mice's md.pattern on the analysis variables (the rows are patterns, their counts the row names)
suppressPackageStartupMessages(library(mice))
mdp <- md.pattern(sr[, c("ReadAchiev", "ReadDis", "SES")], plot = FALSE)
md <- list(columns = colnames(mdp), counts = rownames(mdp), rows = unname(lapply(seq_len(nrow(mdp)), function(i) unname(mdp[i, ]))))

res <- list(md_pattern = md,
  m = M, n_burn = 2000, n_iter = 100, seed = 123, pan_seconds = pan_seconds,
  rhat_max = max(rhat[[1]][, "Rhat"], na.rm = TRUE),
  pool = pool_table(te), pool_dfcom = pool_table(te_df),
  extra = list(names = rownames(ep), estimate = unname(ep[, "Estimate"])),
  tests = tests, fits = per_fit,
  complete_case = list(beta = unname(fixef(cc)), se = unname(sqrt(diag(as.matrix(vcov(cc))))), nobs = nobs(cc)),
  pan20 = list(seconds = pan20_seconds, n_burn = 1000, n_iter = 100, pool = pool_table(te20),
               extra = list(names = rownames(te20$extra.pars), estimate = unname(te20$extra.pars[, "Estimate"])))
)
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(out, "missing_reference.json"))
cat("pan (m=5) seconds:", pan_seconds, " m=20:", pan20_seconds, "\n")
