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
write_json(out, "small_fits_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
cat("wrote", length(out), "references\n")
