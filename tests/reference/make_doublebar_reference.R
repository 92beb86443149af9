# Reference values for the double bar (x || g) with a factor x: lme4 expands it to
# (1 | g) + (0 + x | g), a full covariance over x's indicator columns (issue 17, item 2).
# lme4 1.1-31, nlme 3.1-162, jsonlite 1.8.4.
# Run from this folder: Rscript make_doublebar_reference.R
# Writes Machines.csv (nlme::Machines; Worker and Machine as character) and doublebar_reference.json.
suppressMessages({library(lme4); library(jsonlite)})
num <- function(x) unname(as.numeric(x))

machines <- data.frame(Worker = as.character(nlme::Machines$Worker),
                       Machine = as.character(nlme::Machines$Machine),
                       score = nlme::Machines$score, stringsAsFactors = FALSE)
write.csv(machines, "Machines.csv", row.names = FALSE)
# fit on the data as Python reads the CSV: plain factors, levels in sorted order
mach <- read.csv("Machines.csv", colClasses = c("character", "character", "numeric"))
mach$Worker <- factor(mach$Worker); mach$Machine <- factor(mach$Machine)

fit_info <- function(m, data_name, formula) {
  vc <- as.data.frame(VarCorr(m))
  list(data = data_name, formula = formula, reml = isREML(m), nobs = nobs(m),
       npar = attr(logLik(m), "df"), loglik = num(logLik(m)),
       fixef = as.list(fixef(m)), se = as.list(sqrt(diag(as.matrix(vcov(m))))),
       theta = num(getME(m, "theta")), theta_names = names(getME(m, "theta")),
       sigma = sigma(m),
       varcorr = lapply(seq_len(nrow(vc)), function(i)
         list(grp = vc$grp[i], var1 = if (is.na(vc$var1[i])) NULL else vc$var1[i],
              var2 = if (is.na(vc$var2[i])) NULL else vc$var2[i], vcov = vc$vcov[i], sdcor = vc$sdcor[i])))
}
ctrl <- lmerControl(optCtrl = list(maxfun = 1e5))
R <- list(versions = list(lme4 = as.character(packageVersion("lme4")),
                          nlme = as.character(packageVersion("nlme"))))
f <- "score ~ Machine + (Machine || Worker)"
R$machines_doublebar_reml <- fit_info(lmer(as.formula(f), mach, control = ctrl), "Machines.csv", f)
R$machines_doublebar_ml <- fit_info(lmer(as.formula(f), mach, REML = FALSE, control = ctrl), "Machines.csv", f)
# The intercept and the indicators span the same space, so the optimum is a ridge and nloptwrap's
# default xtol_rel = 1e-4 stops where the SEs are ~1e-4 from the optimum's: also fit it to tight
# tolerances, where the fit is the optimum itself.
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_rel = 1e-12, ftol_abs = 1e-14, xtol_abs = 1e-12, maxeval = 1e5))
R$machines_doublebar_reml_tight <- fit_info(lmer(as.formula(f), mach, control = tight), "Machines.csv", f)
R$machines_doublebar_ml_tight <- fit_info(lmer(as.formula(f), mach, REML = FALSE, control = tight), "Machines.csv", f)
f <- "score ~ Machine + (1 | Worker) + (0 + Machine | Worker)"
R$machines_expanded_reml <- fit_info(lmer(as.formula(f), mach, control = ctrl), "Machines.csv", f)
# afex's expand_re = TRUE with treatment contrasts: one scalar term per model-matrix column
f <- "score ~ Machine + (1 | Worker) + (0 + dummy(Machine, \"B\") | Worker) + (0 + dummy(Machine, \"C\") | Worker)"
R$machines_afex_reml <- fit_info(lmer(as.formula(f), mach, control = ctrl), "Machines.csv", f)
f <- "Reaction ~ Days + (Days || Subject)"
R$sleepstudy_doublebar_reml <- fit_info(lmer(as.formula(f), lme4::sleepstudy), "lme4::sleepstudy", f)
writeLines(toJSON(R, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), "doublebar_reference.json")
