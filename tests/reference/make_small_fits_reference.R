# lme4 fits of nlme's Pixel data (exported to Pixel.csv here) for the small-fit and gradient tests.
# Run: Rscript make_small_fits_reference.R  (needs r-cran-lme4, r-cran-nlme, r-cran-jsonlite)
suppressMessages({library(lme4); library(nlme); library(jsonlite)})
pix <- as.data.frame(nlme::Pixel)[, c("Dog", "Side", "day", "pixel")]
write.csv(pix, "Pixel.csv", row.names = FALSE)
pix <- read.csv("Pixel.csv"); pix$Dog <- factor(pix$Dog); pix$Side <- factor(pix$Side)
f <- "pixel ~ day + I(day^2) + (day | Dog) + (1 | Side:Dog)"
out <- list()
for (reml in c(TRUE, FALSE)) {
  m <- lmer(as.formula(f), pix, REML = reml)
  out[[if (reml) "pixel_reml" else "pixel_ml"]] <- list(
    formula = f, reml = reml, loglik = as.numeric(logLik(m)), theta = unname(getME(m, "theta")),
    fixef = as.list(fixef(m)), se = as.list(sqrt(diag(as.matrix(vcov(m))))), sigma = sigma(m),
    feval = m@optinfo$feval, lme4_version = as.character(packageVersion("lme4")))
}
# a new response y + 5 sin(i) (deterministic: no RNG to match): lme4's fit of the new data, and
# lme4's refit(m, newresp), which can stop at a worse point (sleepstudy, Pixel: logLik 4-6 lower)
refits <- list(sleepstudy = list(f = "Reaction ~ Days + (Days | Subject)", d = sleepstudy, y = "Reaction"),
               penicillin = list(f = "diameter ~ 1 + (1 | plate) + (1 | sample)", d = Penicillin, y = "diameter"),
               pixel = list(f = f, d = pix, y = "pixel"))
for (name in names(refits)) {
  r <- refits[[name]]
  m <- lmer(as.formula(r$f), r$d)
  newresp <- r$d[[r$y]] + 5 * sin(seq_len(nrow(r$d)))
  d2 <- r$d; d2[[r$y]] <- newresp
  m1 <- lmer(as.formula(r$f), d2)
  m2 <- suppressWarnings(refit(m, newresp))
  out[[paste0("refit_", name)]] <- list(formula = r$f, loglik = as.numeric(logLik(m1)),
    theta = unname(getME(m1, "theta")), fixef = unname(fixef(m1)), sigma = sigma(m1),
    refit_loglik = as.numeric(logLik(m2)))
}
write_json(out, "small_fits_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
cat("wrote", length(out), "references\n")
