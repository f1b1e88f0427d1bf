package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/aurora"
)

// newAurora builds the aurora cloner on the AWS SDK's default credential
// chain: environment, web identity (GitHub Actions' OIDC role), shared
// config and SSO, container and instance roles. No static keys are needed.
func newAurora(cfg config.Config, log *slog.Logger) (dbclone.Cloner, error) {
	a := cfg.Database.Aurora
	var opts []func(*awsconfig.LoadOptions) error
	if a.Region != "" {
		opts = append(opts, awsconfig.WithRegion(a.Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("database.aurora: the AWS configuration does not load (%v): check AWS_PROFILE and ~/.aws/config: %w", err, config.ErrInvalid)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("database.aurora.region is not set and neither AWS_REGION nor the profile names one: %w", config.ErrInvalid)
	}
	client := rds.NewFromConfig(awsCfg, func(o *rds.Options) {
		o.Retryer = aurora.Retryer()
		if a.Endpoint != "" {
			o.BaseEndpoint = aws.String(a.Endpoint)
		}
	})
	co := cfg.AuroraOptions()
	co.Region = awsCfg.Region // as the SDK resolved it
	return &aurora.Cloner{API: client, Home: cfg.Home, Credentials: awsCfg.Credentials, Log: log, Options: co}, nil
}
