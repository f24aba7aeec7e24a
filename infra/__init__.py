"""The platform's Pulumi program: stack config -> validated model -> layer components."""
