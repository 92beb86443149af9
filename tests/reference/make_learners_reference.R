# Reference values for tests/test_learners.py: with a linear learner, the EM fixed point of
# MixedEffectsRegressor is lme4's ML fit of the same model; the classifier's is close to glmer's.
# Run from the repository root: Rscript tests/reference/make_learners_reference.R
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
gpa <- read.csv("/work/shared/data/gpa.csv")
gpa$student <- factor(gpa$student)
gpa$sex <- factor(gpa$sex)
gpa$job <- factor(gpa$job)
m <- lmer(gpa ~ occasion + highgpa + sex + job + (1 + occasion | student), data = gpa, REML = FALSE,
          control = lmerControl(optimizer = "bobyqa"))
vc <- as.data.frame(VarCorr(m))
bin <- read.csv("tests/reference/learners_binary.csv")
g <- glmer(y ~ x1 + x2 + z + (1 + z | cluster), data = bin, family = binomial, nAGQ = 1)
g0 <- glmer(y ~ x1 + x2 + z + (1 + z | cluster), data = bin, family = binomial, nAGQ = 0)
vcg <- as.data.frame(VarCorr(g)); vcg0 <- as.data.frame(VarCorr(g0))
out <- list(
  gpa = list(fixef = as.list(fixef(m)), sdcor = vc$sdcor, logLik = as.numeric(logLik(m)),
             deviance = deviance(m), sex_levels = levels(gpa$sex), job_levels = levels(gpa$job),
             ranef_student_1 = as.numeric(ranef(m)$student[1, ])),
  binary_laplace = list(fixef = as.list(fixef(g)), sdcor = vcg$sdcor, logLik = as.numeric(logLik(g))),
  binary_nagq0 = list(fixef = as.list(fixef(g0)), sdcor = vcg0$sdcor)
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/learners_reference.json")
