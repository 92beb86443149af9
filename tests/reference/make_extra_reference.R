# Extra reference values from R (lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, performance 0.10.2,
# cAIC4 1.0) for cases beyond shared/reference: the "data you have not seen" kind of checks.
# Run from this folder: Rscript make_extra_reference.R   (data read from ../../../shared/data)
suppressMessages({library(lme4); library(lmerTest, warn.conflicts = FALSE); library(jsonlite)
  library(performance); library(pbkrtest); library(cAIC4)})
D <- function(f, ...) read.csv(file.path("../../../shared/data", f), ...)
num <- function(x) unname(as.numeric(x))
fit_info <- function(m, data_name, formula, extra = list()) {
  s <- summary(m); cf <- coef(s)
  r <- list(data = data_name, formula = formula, reml = isREML(m),
            family = family(m)$family, link = family(m)$link,
            nobs = nobs(m), npar = attr(logLik(m), "df"), loglik = num(logLik(m)),
            aic = AIC(m), bic = BIC(m), fixef = as.list(fixef(m)), se = as.list(cf[, "Std. Error"]),
            theta = num(getME(m, "theta")), sigma = sigma(m),
            varcorr = lapply(seq_len(nrow(as.data.frame(VarCorr(m)))), function(i) as.list(as.data.frame(VarCorr(m))[i, ])))
  if ("df" %in% colnames(cf)) r$satterthwaite_df <- as.list(cf[, "df"])
  c(r, extra)
}
R <- list()
# --- LMMs ---------------------------------------------------------------------------------
cake <- D("cake.csv", stringsAsFactors = TRUE)
cake$temperature <- factor(cake$temperature, levels = c(175, 185, 195, 205, 215, 225), ordered = TRUE)
cake$recipe <- factor(cake$recipe); cake$replicate <- factor(cake$replicate)
f <- "angle ~ recipe * temperature + (1 | recipe:replicate)"
R$cake <- fit_info(lmerTest::lmer(as.formula(f), cake), "cake.csv", f)
gpa <- D("gpa.csv", stringsAsFactors = TRUE); gpa$student <- factor(gpa$student)
f <- "gpa ~ occasion + job + sex + (1 + occasion | student)"
R$gpa_job <- fit_info(lmerTest::lmer(as.formula(f), gpa), "gpa.csv", f)
sl <- D("sleepstudy.csv"); sl$Subject <- factor(sl$Subject)
keep <- !(seq_len(nrow(sl)) %% 7 == 0 | (sl$Subject == "309" & sl$Days > 4))
slu <- sl[keep, ]
f <- "Reaction ~ Days + (Days | Subject)"
m_unb <- lmerTest::lmer(as.formula(f), slu, REML = FALSE)
R$sleep_unbalanced_ml <- fit_info(m_unb, "sleepstudy.csv rows where row %% 7 != 0 and not (Subject 309 and Days > 4)", f,
                                  list(rows_dropped = which(!keep)))
m_unb_reml <- lmerTest::lmer(as.formula(f), slu)
kr <- coef(summary(m_unb_reml, ddf = "Kenward-Roger"))
R$sleep_unbalanced_reml <- fit_info(m_unb_reml, "same rows", f,
  list(kenward_roger_df = as.list(kr[, "df"]), kenward_roger_se = as.list(kr[, "Std. Error"])))
sl$w <- sl$Days + 1
f <- "Reaction ~ Days + (1 | Subject)"
R$sleep_weighted <- fit_info(lmerTest::lmer(as.formula(f), sl, weights = w), "sleepstudy.csv, weights = Days + 1", f)
pa <- D("Pastes.csv", stringsAsFactors = TRUE)
f <- "strength ~ 1 + (1 | batch) + (1 | sample)"
R$pastes_sample <- fit_info(lmerTest::lmer(as.formula(f), pa, REML = FALSE), "Pastes.csv", f)
dy <- D("Dyestuff.csv", stringsAsFactors = TRUE)
ci <- confint(lme4::lmer(Yield ~ 1 + (1 | Batch), dy), method = "profile", oldNames = FALSE)
R$dyestuff_profile <- list(rows = rownames(ci), lower = num(ci[, 1]), upper = num(ci[, 2]))
# --- GLMMs --------------------------------------------------------------------------------
cbpp <- D("cbpp.csv"); cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
f <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
m <- glmer(as.formula(f), cbpp, family = binomial(link = "probit"))
R$cbpp_probit <- fit_info(m, "cbpp.csv", f)
m <- glmer(as.formula(f), cbpp, family = binomial)
r2 <- r2_nakagawa(m); ic <- icc(m)
R$cbpp_r2 <- list(r2_marginal = num(r2$R2_marginal), r2_conditional = num(r2$R2_conditional),
                  icc_adjusted = num(ic$ICC_adjusted), icc_unadjusted = num(ic$ICC_unadjusted))
gt <- D("grouseticks.csv")
for (v in c("INDEX", "BROOD", "YEAR", "LOCATION")) gt[[v]] <- factor(gt[[v]])
f <- "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION) + offset(log(HEIGHT / 400))"
R$grouse_offset <- fit_info(glmer(as.formula(f), gt, family = poisson), "grouseticks.csv", f)
f <- "TICKS ~ YEAR + cHEIGHT + (1 | BROOD)"
m <- glmer(as.formula(f), gt, family = poisson, nAGQ = 10)
R$grouse_agq10 <- fit_info(m, "grouseticks.csv", f, list(nAGQ = 10))
m <- glmer(as.formula(f), gt, family = poisson)
r2 <- r2_nakagawa(m)
R$grouse_r2 <- list(formula = f, r2_marginal = num(r2$R2_marginal), r2_conditional = num(r2$R2_conditional))
va <- D("VerbAgg.csv", stringsAsFactors = TRUE); va$id <- factor(va$id)
f <- "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"
R$verbagg <- fit_info(glmer(as.formula(f), va, family = binomial), "VerbAgg.csv", f)
f <- "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item) + (1 | mode:situ)"
R$verbagg_three_crossed <- fit_info(glmer(as.formula(f), va, family = binomial), "VerbAgg.csv", f)
# --- cAIC ---------------------------------------------------------------------------------
m <- lme4::lmer(gpa ~ occasion + (1 | student), gpa)
ca <- cAIC(m)
R$caic_gpa3 <- list(formula = "gpa ~ occasion + (1 | student)", caic = num(ca$caic), df = num(ca$df))
write_json(R, "extra_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null")
cat("wrote", length(R), "references\n")
