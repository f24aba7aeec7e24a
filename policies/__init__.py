"""The platform's policy pack: least-privilege IAM and the architecture document's security rules."""
