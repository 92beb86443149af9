# Reference values for the alternatives on gpa (sandwich 3.0-2, plm 2.6-2, geepack 1.3.9, lavaan 0.6-14).
# Run from this folder: Rscript make_alternatives_reference.R
suppressMessages({library(sandwich); library(plm); library(geepack); library(jsonlite)})
num <- function(x) unname(as.numeric(x))
gpa <- read.csv("../../../shared/data/gpa.csv", stringsAsFactors = TRUE); gpa$student <- factor(gpa$student)
R <- list()
l <- lm(gpa ~ occasion + sex, gpa)
R$cluster_robust <- list(formula = "gpa ~ occasion + sex", cluster = "student", coef = as.list(coef(l)),
  se_CR1 = num(sqrt(diag(vcovCL(l, cluster = ~student, type = "HC1")))),
  se_CR2 = num(sqrt(diag(vcovCL(l, cluster = ~student, type = "HC2")))),
  se_CR3 = num(sqrt(diag(vcovCL(l, cluster = ~student, type = "HC3")))))
g <- glm(I(gpa > 3) ~ occasion + sex, family = binomial, data = gpa)
R$cluster_robust_logit <- list(formula = "I(gpa > 3) ~ occasion + sex", coef = num(coef(g)),
  se_CR1 = num(sqrt(diag(vcovCL(g, cluster = ~student, type = "HC1")))))
gpa$occf <- factor(gpa$occasion)
pw <- plm(gpa ~ occasion + job, data = pdata.frame(gpa, index = c("student", "occf")), model = "within")
R$within <- list(formula = "gpa ~ occasion + job", coef = as.list(coef(pw)), se = num(sqrt(diag(vcov(pw)))),
  se_cluster = num(sqrt(diag(vcovHC(pw, method = "arellano", type = "HC1", cluster = "group")))))
go <- gpa[order(gpa$student, gpa$occasion), ]
gee <- function(cs, fam = gaussian, f = gpa ~ occasion + sex) { m <- geeglm(f, id = student, data = go, corstr = cs, family = fam)
  list(coef = num(coef(m)), se = num(summary(m)$coefficients[, "Std.err"]), alpha = num(m$geese$alpha)) }
R$gee <- list(formula = "gpa ~ occasion + sex", exchangeable = gee("exchangeable"), ar1 = gee("ar1"),
              binomial_exchangeable = gee("exchangeable", binomial, I(gpa > 3) ~ occasion + sex))
write_json(R, "alternatives_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
cat("ok\n")
